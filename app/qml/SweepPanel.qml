import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Circuitscope

// Operand sweeps (docs/ARCHITECTURE.md §7.5): a template with {a} and {b} run over a grid on
// the engine worker, with progress and Cancel; then the features it found, ranked by how well a
// grouping of the grid (ones digits, sum mod 10, the sum's tens, the operands' tens) explains
// their map. A row goes to that feature's card (featureActivated), which shows its operand plot.
Rectangle {
    id: panel

    required property ExplorerController explorer
    readonly property ExplorerWeights weights: explorer.weights

    signal featureActivated()

    color: Theme.panel
    border.color: Theme.border

    ColumnLayout {
        anchors.fill: parent
        anchors.margins: Theme.padding
        spacing: Theme.spacing

        Label {
            text: "Operand sweep"
            font.bold: true
            font.pointSize: Theme.baseSize + 1
            color: Theme.text
        }
        GridLayout {
            Layout.fillWidth: true
            columns: 2
            columnSpacing: Theme.spacing
            rowSpacing: 4
            Label { text: "Template"; color: Theme.textMuted; font.pointSize: Theme.smallSize }
            TextField {
                id: templateField
                objectName: "sweepTemplate"
                Layout.fillWidth: true
                text: "calc: {a}+{b}="
                font.family: Theme.monoFamily
                selectByMouse: true
            }
            Label { text: "a"; color: Theme.textMuted; font.pointSize: Theme.smallSize }
            TextField {
                id: aField
                objectName: "sweepA"
                Layout.fillWidth: true
                text: "0..99"
                placeholderText: "FROM..TO or 1,5,7"
                selectByMouse: true
            }
            Label { text: "b"; color: Theme.textMuted; font.pointSize: Theme.smallSize }
            TextField {
                id: bField
                objectName: "sweepB"
                Layout.fillWidth: true
                text: "0..99"
                placeholderText: "FROM..TO or 1,5,7"
                selectByMouse: true
            }
            Label { text: "Position"; color: Theme.textMuted; font.pointSize: Theme.smallSize }
            RowLayout {
                SpinBox {
                    id: positionBox
                    objectName: "sweepPosition"
                    from: -64
                    to: 64
                    value: -1
                    editable: true
                }
                Label {
                    Layout.fillWidth: true
                    text: positionBox.value < 0 ? "from the end (-1: the last token)" : "from the start (0: BOS)"
                    wrapMode: Text.Wrap
                    font.pointSize: Theme.smallSize
                    color: Theme.textFaint
                }
            }
        }
        RowLayout {
            Layout.fillWidth: true
            spacing: Theme.spacing
            Button {
                objectName: "sweepButton"
                text: "Run sweep"
                enabled: panel.explorer.ready && !panel.weights.sweeping
                onClicked: panel.weights.startSweep(templateField.text, aField.text, bField.text, positionBox.value)
            }
            Button {
                objectName: "sweepCancelButton"
                text: "Cancel"
                enabled: panel.weights.sweeping
                onClicked: panel.weights.cancelSweep()
            }
            ProgressBar {
                objectName: "sweepProgress"
                Layout.fillWidth: true
                visible: panel.weights.sweeping
                value: panel.weights.sweepProgress
            }
        }
        Label {
            objectName: "sweepText"
            Layout.fillWidth: true
            visible: text.length > 0
            wrapMode: Text.Wrap
            font.pointSize: Theme.smallSize
            color: panel.weights.sweeping || panel.weights.hasSweep ? Theme.textMuted : Theme.error
            text: panel.weights.sweepText
        }
        Rectangle {
            Layout.fillWidth: true
            Layout.preferredHeight: 1
            color: Theme.divider
        }
        RowLayout {
            Layout.fillWidth: true
            visible: panel.weights.hasSweep
            Label { Layout.preferredWidth: 24; text: "#"; font.pointSize: Theme.smallSize; color: Theme.textFaint }
            Label { Layout.preferredWidth: 64; text: "feature"; font.pointSize: Theme.smallSize; color: Theme.textFaint }
            Label { Layout.fillWidth: true; text: "structure"; font.pointSize: Theme.smallSize; color: Theme.textFaint }
            Label { Layout.preferredWidth: 64; text: "explained"; horizontalAlignment: Text.AlignRight; font.pointSize: Theme.smallSize; color: Theme.textFaint }
        }
        ListView {
            id: findings
            objectName: "sweepFindings"
            Layout.fillWidth: true
            Layout.fillHeight: true
            clip: true
            model: panel.weights.findings
            boundsBehavior: Flickable.StopAtBounds
            ScrollBar.vertical: ScrollBar {}
            delegate: Rectangle {
                id: row
                required property var modelData
                required property int index
                width: findings.width - 10
                height: 36
                radius: 3
                color: area.containsMouse ? Theme.hover
                       : panel.explorer.cardLayer === modelData.layer && panel.explorer.cardFeature === modelData.feature
                         ? Theme.accentSoft : "transparent"
                ColumnLayout {
                    anchors.fill: parent
                    anchors.leftMargin: 2
                    anchors.rightMargin: 2
                    spacing: 0
                    RowLayout {
                        Layout.fillWidth: true
                        Label { Layout.preferredWidth: 24; text: row.index + 1; font.pointSize: Theme.smallSize; color: Theme.textFaint }
                        Label {
                            Layout.preferredWidth: 64
                            text: row.modelData.title
                            font.family: Theme.monoFamily
                            font.pointSize: Theme.smallSize
                            color: Theme.accent
                        }
                        Label {
                            Layout.fillWidth: true
                            text: row.modelData.structureText
                            font.pointSize: Theme.smallSize
                            color: Theme.text
                            elide: Text.ElideRight
                        }
                        Label {
                            Layout.preferredWidth: 64
                            horizontalAlignment: Text.AlignRight
                            text: (row.modelData.explained * 100).toFixed(0) + "%"
                            font.family: Theme.monoFamily
                            font.pointSize: Theme.smallSize
                            color: Theme.text
                        }
                    }
                    Label {
                        Layout.fillWidth: true
                        Layout.leftMargin: 24
                        text: row.modelData.caption + " · fires on " + (row.modelData.active * 100).toFixed(0) + "% of the grid"
                        textFormat: Text.PlainText
                        elide: Text.ElideRight
                        font.pointSize: Theme.smallSize - 1
                        color: Theme.textMuted
                    }
                }
                MouseArea {
                    id: area
                    anchors.fill: parent
                    hoverEnabled: true
                    cursorShape: Qt.PointingHandCursor
                    onClicked: {
                        panel.explorer.showFeature(row.modelData.layer, row.modelData.feature)
                        panel.featureActivated()
                    }
                }
            }
        }
        Label {
            visible: !panel.weights.hasSweep && !panel.weights.sweeping
            Layout.fillWidth: true
            Layout.fillHeight: true
            verticalAlignment: Text.AlignTop
            wrapMode: Text.Wrap
            font.pointSize: Theme.smallSize
            color: Theme.textFaint
            text: "Runs the template for every a and b, records every feature at the position, and ranks the features "
                  + "by the structure of their map: ones digits, the sum mod 10, the sum's tens, the operands' tens."
        }
    }
}
