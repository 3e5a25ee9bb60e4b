import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Circuitscope
import Circuitscope.Inspector

// The feature card's global weights (docs/ARCHITECTURE.md §7.5) for the shown feature
// (explorer.weights follows it): its partners upstream or downstream ranked by TWERA, ERA or
// virtual weight (a row goes to that feature), the weight plots against chosen tokens, and its
// operand plot when the latest sweep has one.
ColumnLayout {
    id: view

    required property ExplorerController explorer
    required property InspectorColors colors
    readonly property ExplorerWeights weights: explorer.weights
    property bool downstreamShown: false

    spacing: view.colors.spacing

    Rectangle {
        Layout.fillWidth: true
        Layout.preferredHeight: 1
        color: view.colors.divider
    }
    Label {
        text: "Global weights"
        font.bold: true
        font.pointSize: view.colors.baseSize
        color: view.colors.text
    }
    RowLayout {
        Layout.fillWidth: true
        spacing: 4
        Label {
            text: "Partners ranked by"
            font.pointSize: view.colors.smallSize
            color: view.colors.textMuted
        }
        Repeater {
            model: [{ kind: "twera", text: "TWERA" }, { kind: "era", text: "ERA" }, { kind: "virtual", text: "virtual" }]
            delegate: Button {
                required property var modelData
                objectName: "partnerKind_" + modelData.kind
                flat: true
                checkable: true
                checked: view.weights.shownKind === modelData.kind
                enabled: modelData.kind === "virtual" || view.weights.statisticsAvailable
                padding: 4
                font.pointSize: view.colors.smallSize
                text: modelData.text
                onClicked: view.weights.kind = modelData.kind
            }
        }
        Item { Layout.fillWidth: true }
    }
    TabBar {
        id: sides
        objectName: "partnerSide"
        Layout.fillWidth: true
        currentIndex: view.downstreamShown ? 1 : 0
        onCurrentIndexChanged: view.downstreamShown = currentIndex === 1
        TabButton {
            text: "Upstream (" + view.weights.upstream.count + ")"
            font.pointSize: view.colors.smallSize
        }
        TabButton {
            text: "Downstream (" + view.weights.downstream.count + ")"
            font.pointSize: view.colors.smallSize
        }
    }
    Label {
        objectName: "partnersHeader"
        Layout.fillWidth: true
        wrapMode: Text.Wrap
        font.pointSize: view.colors.smallSize
        color: view.colors.textMuted
        text: {
            const side = view.downstreamShown ? "downstream" : "upstream"
            const firing = view.downstreamShown ? view.weights.downCoactivating : view.weights.upCoactivating
            const kept = view.downstreamShown ? view.weights.downKept : view.weights.upKept
            const by = { twera: "TWERA", era: "ERA", virtual: "virtual weight" }[view.weights.shownKind]
            let text = "Top " + side + " partners by " + by
            if (firing >= 0)
                text += " · fired with " + firing.toLocaleString(Qt.locale("en_US"), "f", 0) + " features " + side
                        + ", the store keeps " + kept
            if (view.weights.partnersMs > 0)
                text += " · " + view.weights.partnersMs.toFixed(1) + " ms"
            return text
        }
    }
    Label {
        objectName: "partnersText"
        visible: text.length > 0
        Layout.fillWidth: true
        wrapMode: Text.Wrap
        font.pointSize: view.colors.smallSize
        color: view.colors.negative
        text: view.weights.partnersText
    }
    Label {
        visible: (view.downstreamShown ? view.weights.downstream.count : view.weights.upstream.count) === 0
                 && view.weights.partnersText.length === 0
        text: view.weights.loadingPartners ? "Reading the weights…"
              : view.downstreamShown ? "No features read what it writes (the last layer, or no co-activation)"
                                     : "No features write to what it reads (layer 0, or no co-activation)"
        wrapMode: Text.Wrap
        Layout.fillWidth: true
        font.pointSize: view.colors.smallSize
        color: view.colors.textFaint
    }
    ColumnLayout {
        objectName: "partnerList"
        Layout.fillWidth: true
        spacing: 1
        Repeater {
            objectName: "partnerRepeater"
            model: view.downstreamShown ? view.weights.downstream : view.weights.upstream
            delegate: Rectangle {
                id: row
                required property int index
                required property int partnerLayer
                required property int partnerFeature
                required property string title
                required property string caption
                required property double weight
                required property double fraction
                required property var coactivations
                objectName: "partnerRow"
                Layout.fillWidth: true
                implicitHeight: 20
                radius: 3
                color: area.containsMouse ? view.colors.hover : "transparent"

                Text {
                    id: titleText
                    anchors.left: parent.left
                    anchors.leftMargin: 3
                    anchors.verticalCenter: parent.verticalCenter
                    width: 62
                    text: row.title
                    font.family: view.colors.monoFamily
                    font.pointSize: view.colors.smallSize
                    color: view.colors.accent
                }
                Text {
                    anchors.left: titleText.right
                    anchors.right: bar.left
                    anchors.rightMargin: 6
                    anchors.verticalCenter: parent.verticalCenter
                    text: row.caption
                    textFormat: Text.PlainText
                    elide: Text.ElideRight
                    font.pointSize: view.colors.smallSize
                    color: view.colors.text
                }
                // A signed bar around zero: positive to the right, negative to the left.
                Item {
                    id: bar
                    anchors.right: valueText.left
                    anchors.rightMargin: 4
                    anchors.verticalCenter: parent.verticalCenter
                    width: 64
                    height: 10
                    Rectangle {
                        anchors.fill: parent
                        color: view.colors.barTrack
                        radius: 2
                    }
                    Rectangle {
                        x: row.fraction >= 0 ? bar.width / 2 : bar.width / 2 * (1 + row.fraction)
                        width: Math.max(1, Math.abs(row.fraction) * bar.width / 2)
                        height: bar.height
                        radius: 2
                        color: row.fraction >= 0 ? view.colors.positive : view.colors.negative
                    }
                    Rectangle {
                        x: bar.width / 2
                        width: 1
                        height: bar.height
                        color: view.colors.textFaint
                    }
                }
                Text {
                    id: valueText
                    anchors.right: countText.left
                    anchors.rightMargin: 4
                    anchors.verticalCenter: parent.verticalCenter
                    width: 50
                    horizontalAlignment: Text.AlignRight
                    text: view.colors.formatNumber(row.weight, 3)
                    font.family: view.colors.monoFamily
                    font.pointSize: view.colors.smallSize - 1
                    color: view.colors.text
                }
                Text {
                    id: countText
                    anchors.right: parent.right
                    anchors.rightMargin: 3
                    anchors.verticalCenter: parent.verticalCenter
                    width: 40
                    horizontalAlignment: Text.AlignRight
                    text: row.coactivations >= 0 ? "×" + row.coactivations : "–"
                    font.family: view.colors.monoFamily
                    font.pointSize: view.colors.smallSize - 1
                    color: view.colors.textMuted
                }
                MouseArea {
                    id: area
                    anchors.fill: parent
                    hoverEnabled: true
                    cursorShape: Qt.PointingHandCursor
                    onClicked: view.explorer.showFeature(row.partnerLayer, row.partnerFeature)
                }
                ToolTip.visible: area.containsMouse
                ToolTip.delay: 600
                ToolTip.text: row.title + (row.caption.length > 0 ? " · " + row.caption : "")
                              + "\nweight " + row.weight.toPrecision(4)
                              + (row.coactivations >= 0 ? ", fired together at " + row.coactivations + " tokens" : "")
            }
        }
    }

    // Weight plots against chosen tokens.
    Label {
        Layout.topMargin: 4
        text: "Token weights"
        font.bold: true
        font.pointSize: view.colors.baseSize
        color: view.colors.text
    }
    TextField {
        id: tokensField
        objectName: "weightTokensField"
        Layout.fillWidth: true
        placeholderText: "Tokens separated by |, e.g.  0| 1| 2"
        font.family: view.colors.monoFamily
        font.pointSize: view.colors.smallSize
        selectByMouse: true
        text: view.weights.weightTokens
        // A list set from elsewhere shows from its start.
        onTextChanged: if (!activeFocus) cursorPosition = 0
        onAccepted: view.weights.weightTokens = text
        onEditingFinished: view.weights.weightTokens = text
    }
    Label {
        objectName: "tokenPlotText"
        visible: text.length > 0
        Layout.fillWidth: true
        wrapMode: Text.Wrap
        font.pointSize: view.colors.smallSize
        color: view.colors.negative
        text: view.weights.tokenPlotText
    }
    Repeater {
        model: [{ key: "input", name: "tokenInputPlot", title: "Token embedding → this feature's encoder", max: "tokenInputMax" },
                { key: "output", name: "tokenOutputPlot", title: "This feature's decoders → token logit", max: "tokenOutputMax" }]
        delegate: ColumnLayout {
            id: plot
            required property var modelData
            visible: view.weights.tokenRows.length > 0
            Layout.fillWidth: true
            spacing: 2
            Label {
                text: plot.modelData.title
                font.pointSize: view.colors.smallSize
                color: view.colors.textMuted
            }
            Item {
                objectName: plot.modelData.name
                Layout.fillWidth: true
                Layout.preferredHeight: 68
                readonly property int count: view.weights.tokenRows.length
                readonly property real maxValue: view.weights[plot.modelData.max]
                Rectangle {
                    // the zero line
                    y: 28
                    width: parent.width
                    height: 1
                    color: view.colors.textFaint
                }
                Repeater {
                    model: view.weights.tokenRows
                    delegate: Item {
                        id: column
                        required property var modelData
                        required property int index
                        readonly property real value: modelData.valid ? modelData[plot.modelData.key] : 0
                        readonly property real share: parent.maxValue > 0 ? value / parent.maxValue : 0
                        x: index * parent.width / Math.max(1, parent.count)
                        width: parent.width / Math.max(1, parent.count)
                        height: parent.height
                        Rectangle {
                            x: parent.width * 0.18
                            width: parent.width * 0.64
                            y: column.share >= 0 ? 28 - 24 * column.share : 29
                            height: Math.max(1, 24 * Math.abs(column.share))
                            radius: 1
                            visible: column.modelData.valid
                            color: column.share >= 0 ? view.colors.positive : view.colors.negative
                        }
                        Text {
                            visible: !column.modelData.valid
                            anchors.horizontalCenter: parent.horizontalCenter
                            y: 20
                            text: "✕"
                            font.pointSize: view.colors.smallSize
                            color: view.colors.negative
                        }
                        Text {
                            anchors.horizontalCenter: parent.horizontalCenter
                            y: 54
                            width: parent.width
                            horizontalAlignment: Text.AlignHCenter
                            elide: Text.ElideRight
                            // Spaces shown as ␣, as the prompt's token chips do.
                            text: column.modelData.token.replace(/ /g, "\u2423")
                            textFormat: Text.PlainText
                            font.family: view.colors.monoFamily
                            font.pointSize: view.colors.smallSize - 1
                            color: column.modelData.valid ? view.colors.text : view.colors.negative
                        }
                        ToolTip.visible: tip.containsMouse
                        ToolTip.text: column.modelData.valid ? "“" + column.modelData.token + "”: " + column.value.toPrecision(4)
                                                             : "“" + column.modelData.token + "”: " + column.modelData.message
                        MouseArea {
                            id: tip
                            anchors.fill: parent
                            hoverEnabled: true
                        }
                    }
                }
                Text {
                    anchors.right: parent.right
                    y: 0
                    text: "±" + view.colors.formatNumber(parent.maxValue, 3)
                    font.pointSize: view.colors.smallSize - 1
                    color: view.colors.textFaint
                }
            }
        }
    }

    // The operand plot from the latest sweep.
    Label {
        objectName: "operandTitle"
        visible: view.weights.hasOperandPlot
        Layout.topMargin: 4
        text: "Operand plot"
        font.bold: true
        font.pointSize: view.colors.baseSize
        color: view.colors.text
    }
    Label {
        objectName: "operandText"
        visible: view.weights.hasOperandPlot
        Layout.fillWidth: true
        wrapMode: Text.Wrap
        font.pointSize: view.colors.smallSize
        color: view.colors.textMuted
        text: view.weights.operandText
    }
    OperandPlot {
        objectName: "operandPlot"
        visible: view.weights.hasOperandPlot
        Layout.fillWidth: true
        // Square cells: the plot's width less the axes and the colour bar, plus the top axis.
        Layout.preferredHeight: Math.max(120, width - 92 + 36)
        image: view.weights.operandImage
        aValues: view.weights.operandA
        bValues: view.weights.operandB
        minValue: view.weights.operandMin
        maxValue: view.weights.operandMax
        textColor: view.colors.textMuted
        lineColor: view.colors.border
    }
}
