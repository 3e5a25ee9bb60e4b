import QtQuick
import QtQuick.Controls
import Circuitscope

// One next-token candidate: rank, token, probability bar and percentage, logit. Columns are
// anchored (not a RowLayout) so they follow the panel's widths exactly, as the headings do.
Rectangle {
    id: row

    required property int index
    required property int rank
    required property var tokenId
    required property string text
    required property double probability
    required property double logit

    // Column widths from Theme, which the panel's headings use too.
    readonly property int rankWidth: Theme.rankColumnWidth
    readonly property int tokenWidth: Theme.tokenColumnWidth(width)
    readonly property int percentWidth: Theme.percentColumnWidth
    readonly property int logitWidth: Theme.logitColumnWidth

    implicitHeight: Theme.rowHeight
    color: hover.hovered ? Theme.hover : (index % 2 === 0 ? Theme.panel : "#fbfbfd")

    HoverHandler {
        id: hover
    }

    Label {
        id: rankLabel
        anchors.left: parent.left
        anchors.leftMargin: Theme.padding
        anchors.verticalCenter: parent.verticalCenter
        width: row.rankWidth
        horizontalAlignment: Text.AlignRight
        text: row.rank
        color: Theme.textFaint
        font.family: Theme.monoFamily
        font.pointSize: Theme.smallSize
    }
    Item {
        id: tokenCell
        anchors.left: rankLabel.right
        anchors.leftMargin: Theme.spacing
        anchors.top: parent.top
        anchors.bottom: parent.bottom
        width: row.tokenWidth

        Rectangle {
            anchors.verticalCenter: parent.verticalCenter
            width: Math.min(tokenLabel.implicitWidth + 10, parent.width)
            height: tokenLabel.implicitHeight + 4
            radius: 3
            color: Theme.chip
            border.color: Theme.chipBorder

            Label {
                id: tokenLabel
                anchors.fill: parent
                anchors.leftMargin: 5
                anchors.rightMargin: 5
                verticalAlignment: Text.AlignVCenter
                text: row.text
                textFormat: Text.PlainText
                elide: Text.ElideRight
                font.family: Theme.monoFamily
                font.pointSize: Theme.baseSize
                color: Theme.text
            }
        }
    }
    Label {
        id: logitLabel
        anchors.right: parent.right
        anchors.rightMargin: Theme.padding
        anchors.verticalCenter: parent.verticalCenter
        width: row.logitWidth
        horizontalAlignment: Text.AlignRight
        text: row.logit.toFixed(3)
        color: Theme.textMuted
        font.family: Theme.monoFamily
        font.pointSize: Theme.baseSize
    }
    Label {
        id: percentLabel
        anchors.right: logitLabel.left
        anchors.rightMargin: Theme.spacing
        anchors.verticalCenter: parent.verticalCenter
        width: row.percentWidth
        horizontalAlignment: Text.AlignRight
        text: row.formatPercent(row.probability)
        color: Theme.text
        font.family: Theme.monoFamily
        font.pointSize: Theme.baseSize
    }
    // The bar spans the whole track at probability 1.
    Rectangle {
        anchors.left: tokenCell.right
        anchors.leftMargin: Theme.spacing
        anchors.right: percentLabel.left
        anchors.rightMargin: Theme.spacing
        anchors.verticalCenter: parent.verticalCenter
        height: 12
        radius: 2
        color: Theme.barTrack

        Rectangle {
            width: Math.max(row.probability > 0 ? 1 : 0, parent.width * row.probability)
            height: parent.height
            radius: 2
            color: Theme.bar
        }
    }

    ToolTip.visible: hover.hovered
    ToolTip.delay: 500
    ToolTip.text: "token id " + row.tokenId + " · p = " + row.probability.toPrecision(4)

    function formatPercent(p) {
        const percent = p * 100
        if (percent >= 10)
            return percent.toFixed(1) + "%"
        if (percent >= 0.01)
            return percent.toFixed(2) + "%"
        return "<0.01%"
    }
}
